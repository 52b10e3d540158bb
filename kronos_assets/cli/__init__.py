"""The commands: ``kronos-assets`` (``main``; ``main_job`` runs the graph in-process, ``health``, ``study``, ``ui``),
``kronos-forecast`` (``forecast``) and ``kronos-train`` (``train``). The top layer: nothing imports it."""
