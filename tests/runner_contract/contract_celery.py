"""The contract kit on Celery: tasks of an app of their own (memory broker), published with delay()."""

import functools

from celery import Celery

from pytest_jobtrace.celery import CeleryJobs

LABEL = "celery_jobs"
LOG = []
RUNNER = None


class Unprintable(Exception):
    """An exception whose str() raises, as some library exceptions' do."""

    def __str__(self):
        raise RuntimeError("no text")


app = Celery("runner_contract", broker="memory://", backend="cache+memory://", set_as_current=False)
# Not shared: in-process pytester runs import this module afresh, and a shared task would land on later apps.
task = functools.partial(app.task, shared=False)


@task(bind=True)
def remind(self, n):
    LOG.append(("remind", n, self.request.id))


@task(bind=True)
def chain(self, n, last=None):
    LOG.append(("chain", n, self.request.id))
    if last is None or n < last:  # chain(n) never ends; chain(n, last) stops at last
        chain.delay(n + 1, last)


@task(bind=True)
def boom(self):
    LOG.append(("boom", None, self.request.id))
    raise ValueError("boom")


@task(bind=True, autoretry_for=(ValueError,), max_retries=1, default_retry_delay=10)
def flaky(self):
    LOG.append(("flaky", None, self.request.id))
    raise ValueError("flaky")


@task(bind=True)
def mute(self):
    LOG.append(("mute", None, self.request.id))
    raise Unprintable()


@task(bind=True)
def drainer(self, verb):
    LOG.append(("drainer", verb, self.request.id))
    getattr(RUNNER, verb)()


JOBS = {"remind": remind, "chain": chain, "boom": boom, "flaky": flaky, "drainer": drainer, "mute": mute}


def enqueue(name, *args):
    JOBS[name].delay(*args)


def item_id(item):
    return item.job_id


def by_hand():
    return CeleryJobs(app)
