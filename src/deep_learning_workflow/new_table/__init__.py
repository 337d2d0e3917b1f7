"""A new table in one command: read a table, infer its environment, write ``conf/<env>/`` and check it.

``kedro dlw new-table <file> --target <column> --env <env>`` (see :mod:`deep_learning_workflow.cli`) writes an
environment from a CSV or Parquet table; ``kedro dlw check --env <env>`` checks an environment against its table.
"""
