"""A small shop whose request handlers enqueue background jobs: the code the example tests trace."""
