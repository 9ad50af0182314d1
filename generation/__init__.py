"""Generation stage: bias taxonomy -> prompts -> Ray Data pipeline -> engine -> parsed, cached parquet."""
