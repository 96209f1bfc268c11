"""Results leaving archbench in other tools' formats: MLflow runs, TensorBoard event files,
and the trials/metrics/predictions tables as JSON, CSV and Parquet.

Each exporter reads stored rows (through ``core.store``) and the stored report (through
``core.report``) and writes them out; nothing here changes a comparison's state. It may
import ``core.report``, ``core.store`` and the shared modules, never ``core.trials``.
"""
