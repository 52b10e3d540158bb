"""The evaluation library over the metrics registry: forecast and score records (``records``, ``scoring``), the
track record and its verdicts (``track_record``), and the real-data study's record (``study_record``). No Dagster,
no settings."""
