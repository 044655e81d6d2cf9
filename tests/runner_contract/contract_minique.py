"""The contract kit on minique, the third-party example of docs/adapters.md (it has no retries)."""

import minique

LABEL = "minique_jobs"
LOG = []
RUNNER = None


class Unprintable(Exception):
    """An exception whose str() raises, as some library exceptions' do."""

    def __str__(self):
        raise RuntimeError("no text")


@minique.task
def remind(n):
    LOG.append(("remind", n, None))


@minique.task
def chain(n, last=None):
    LOG.append(("chain", n, None))
    if last is None or n < last:  # chain(n) never ends; chain(n, last) stops at last
        chain.delay(n + 1, last)


@minique.task
def boom():
    LOG.append(("boom", None, None))
    raise ValueError("boom")


@minique.task
def mute():
    LOG.append(("mute", None, None))
    raise Unprintable()


@minique.task
def drainer(verb):
    LOG.append(("drainer", verb, None))
    getattr(RUNNER, verb)()


JOBS = {"remind": remind, "chain": chain, "boom": boom, "drainer": drainer, "mute": mute}


def enqueue(name, *args):
    JOBS[name].delay(*args)


def item_id(item):
    return item.message["id"]
