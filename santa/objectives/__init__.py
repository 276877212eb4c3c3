"""Training objectives: plugins that turn a packed window into a sample (see ``base``).

Concrete objectives (``ar``, ``fim``, third parties') are found through the ``santa.objectives``
entry points, never imported here, so a plugin's heavy imports load only when it is chosen.
"""

from santa.objectives.base import IGNORE_INDEX, Objective, to_sample

__all__ = ["IGNORE_INDEX", "Objective", "to_sample"]
