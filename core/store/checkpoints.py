"""Where a trial's checkpoint lives on disk, and removing it: the rules the worker (which
writes it, worker/checkpoint.py) and the sweeper (which removes what ended trials left) share.

A trial's folder is ``Settings.checkpoints / <trial id>``; a folder of that root that is not
named by a trial id is not ours and is never removed. No database access here.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from core.config import Settings

__all__ = ["checkpoint_folder", "remove_checkpoint", "trial_folders"]


def checkpoint_folder(settings: Settings, trial_id: str) -> Path:
    """The folder of ``trial_id``'s resume point."""
    return Path(settings.checkpoints) / trial_id


def remove_checkpoint(settings: Settings, trial_id: str) -> None:
    """Delete a trial's checkpoint folder, if any (every way a trial ends calls this)."""
    shutil.rmtree(checkpoint_folder(settings, trial_id), ignore_errors=True)


def trial_folders(settings: Settings) -> list[str]:
    """The trial ids that have a checkpoint folder (only folders named by a trial id)."""
    root = settings.checkpoints
    if not root.is_dir():
        return []
    return [p.name for p in root.iterdir() if p.is_dir() and _is_uuid(p.name)]


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False
