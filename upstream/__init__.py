"""The job systems' own test suites, run under this project's fixtures (issue 20).

Not part of the package and not collected by the project's test run (``testpaths = ["tests"]``): run a suite with
``python upstream/run.py SUITE --mode fixture|reference``. The upstream tests are downloaded at run time by
``upstream/fetch.py``; only the adaptation layer (one folder per suite) lives here.
"""
