"""The REST service that serves a serving bundle: ``python -m deep_learning_workflow.service --bundle PATH``.

See ``docs/service.md`` for the endpoints, the settings (``conf/base/service.yml``, ``DLW_SERVICE_*`` environment
variables, command-line flags), canary and shadow versions, the prediction log and the alert rules.

Importing this package (or its request-time modules) never imports TensorFlow: only
:mod:`deep_learning_workflow.service.loader` does, when a bundle is loaded.
"""
