"""The report a person reads: each unit's top images with the region above its threshold outlined (``gallery``),
and the HTML pages of ``results/<run>/report/`` (``html``)."""
