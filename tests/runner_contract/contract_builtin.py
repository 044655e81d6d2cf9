"""The contract kit on the built-in adapter: jobs are Job subclasses, named in lower case like the others."""

from pytest_jobtrace.builtin import Job, JobRuntime

LABEL = "builtin_jobs"
LOG = []  # (job name, argument, job id) per attempt, in the order they ran
RUNNER = None  # the runner of the running test, for drainer


class Unprintable(Exception):
    """An exception whose str() raises, as some library exceptions' do."""

    def __str__(self):
        raise RuntimeError("no text")


class remind(Job):  # lower case: the same short name as on every system
    def perform(self, n):
        LOG.append(("remind", n, self.job_id))


class chain(Job):
    def perform(self, n, last=None):
        LOG.append(("chain", n, self.job_id))
        if last is None or n < last:  # chain(n) never ends; chain(n, last) stops at last
            chain.perform_later(n + 1, last)


class boom(Job):
    def perform(self):
        LOG.append(("boom", None, self.job_id))
        raise ValueError("boom")


class flaky(Job):
    retry_on = (ValueError,)
    attempts = 2
    wait = 10

    def perform(self):
        LOG.append(("flaky", None, self.job_id))
        raise ValueError("flaky")


class mute(Job):
    def perform(self):
        LOG.append(("mute", None, self.job_id))
        raise Unprintable()


class drainer(Job):
    def perform(self, verb):
        LOG.append(("drainer", verb, self.job_id))
        getattr(RUNNER, verb)()


JOBS = {"remind": remind, "chain": chain, "boom": boom, "flaky": flaky, "drainer": drainer, "mute": mute}


def enqueue(name, *args):
    JOBS[name].perform_later(*args)


def item_id(item):
    return item.job_id


def by_hand():
    """A runner built outside pytest, opened; enqueue() lands on it while it is open."""
    return JobRuntime()
