"""The run operations under the Dagster definitions (``defs``): runs and their tags (``runs``), failures and alerts
(``failures``, ``alerts``), the local instance and its files (``local_instance``, ``instance_files``), run
retention (``retention``), what a tick still has to do (``incremental``) and backups (``backup``)."""
