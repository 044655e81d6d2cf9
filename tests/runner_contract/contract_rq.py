"""The contract kit on RQ: module-level functions, enqueued on the runner's queue (from a job: on its own)."""

from rq import Queue, Retry, get_current_job

from pytest_jobtrace.rq import RQRuntime

LABEL = "rq_jobs"
LOG = []
RUNNER = None
RETRIES = {"flaky": Retry(max=1, interval=10)}


class Unprintable(Exception):
    """An exception whose str() raises, as some library exceptions' do."""

    def __str__(self):
        raise RuntimeError("no text")


def remind(n):
    LOG.append(("remind", n, get_current_job().id))


def chain(n, last=None):
    job = get_current_job()
    LOG.append(("chain", n, job.id))
    if last is None or n < last:  # chain(n) never ends; chain(n, last) stops at last
        Queue(job.origin, connection=job.connection).enqueue(chain, n + 1, last)


def boom():
    LOG.append(("boom", None, get_current_job().id))
    raise ValueError("boom")


def flaky():
    LOG.append(("flaky", None, get_current_job().id))
    raise ValueError("flaky")


def mute():
    LOG.append(("mute", None, get_current_job().id))
    raise Unprintable()


def drainer(verb):
    LOG.append(("drainer", verb, get_current_job().id))
    getattr(RUNNER, verb)()


JOBS = {"remind": remind, "chain": chain, "boom": boom, "flaky": flaky, "drainer": drainer, "mute": mute}


def enqueue(name, *args):
    RUNNER.queue().enqueue(JOBS[name], *args, retry=RETRIES.get(name))


def item_id(item):
    return item.job_id


def by_hand():
    return RQRuntime()
