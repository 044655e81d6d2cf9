"""A small store whose Flask views enqueue the guide's background jobs on three job systems.

The business logic (``logic.py``) is written once; ``builtin_jobs.py``, ``celery_tasks.py`` and
``rq_jobs.py`` wrap it as each system's jobs, and ``web.py`` serves the requests that enqueue them.
"""
