"""What the live worker tests share: the Redis they need, and a small project for pytester runs."""

from __future__ import annotations

import os
import textwrap

import pytest

REDIS = "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    """Live workers run on the Redis at 127.0.0.1:6379: skip without one, unless JOBTRACE_REQUIRE_REDIS=1."""
    import redis

    try:
        with redis.Redis.from_url(REDIS, socket_connect_timeout=1) as client:
            client.ping()
    except redis.RedisError as error:
        if os.environ.get("JOBTRACE_REQUIRE_REDIS") == "1":
            pytest.fail(f"no Redis answers at {REDIS} ({error}), and JOBTRACE_REQUIRE_REDIS=1 asks for one")
        pytest.skip(f"live workers need the Redis at {REDIS} (none answers: {error}); CI sets JOBTRACE_REQUIRE_REDIS=1")


# Jobs and an app for the projects pytester runs: importable by the worker processes (the project's
# directory is on the test process's sys.path, which the live fixtures hand to their workers).
JOBS = textwrap.dedent(
    """
    import os
    import signal

    from celery import Celery
    from opentelemetry import trace

    tracer = trace.get_tracer("shop")
    app = Celery("shop", broker="memory://", set_as_current=False)


    def hello(value):
        with tracer.start_as_current_span("hello.work"):
            return value


    def kill_the_worker():
        os.kill(os.getppid(), signal.SIGKILL)  # from the work horse: its worker dies
        os._exit(1)  # and the horse with it, before the job ends


    @app.task(name="shop.add")
    def add(x, y):
        with tracer.start_as_current_span("add.work"):
            return x + y


    @app.task(name="shop.kill_the_worker")
    def kill_celery_worker():
        os.kill(os.getpid(), signal.SIGKILL)  # the solo pool runs tasks in the worker itself
    """
)

CONFTEST = textwrap.dedent(
    """
    import pytest

    import shop_jobs


    @pytest.fixture
    def celery_app():
        return shop_jobs.app
    """
)


# A job that fails for good, for the modes tests.
FAILING = textwrap.dedent(
    """

    class PaymentError(Exception):
        pass


    def charge(order_id):
        raise PaymentError(f"card declined for order {order_id}")
    """
)


def make_project(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makepyfile(shop_jobs=JOBS + FAILING, conftest=CONFTEST, **files)
    pytester.makeini("[pytest]\njobtrace_celery_live_pool = solo\n")


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def require_rabbitmq() -> str:
    """The RabbitMQ at 127.0.0.1:5672: skip without one, unless JOBTRACE_REQUIRE_RABBITMQ=1."""
    from kombu.connection import Connection

    try:
        with Connection(RABBITMQ, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # kombu raises the transport's own errors (OSError, amqp's)
        if os.environ.get("JOBTRACE_REQUIRE_RABBITMQ") == "1":
            pytest.fail(f"no RabbitMQ answers at {RABBITMQ} ({error}), and JOBTRACE_REQUIRE_RABBITMQ=1 asks for one")
        pytest.skip(f"needs the RabbitMQ at {RABBITMQ} (none answers: {error}); CI sets JOBTRACE_REQUIRE_RABBITMQ=1")
    return RABBITMQ
