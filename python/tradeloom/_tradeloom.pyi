"""Type hints of the native module (crates/py)."""

from typing import Dict, Optional, Tuple

__version__: str

class SpecError(ValueError):
    """The spec or its data was refused before the run started: nothing was written."""

class RunFailed(RuntimeError):
    """The run started and failed; ``args`` are (message, run_id, run_dir)."""

def run_spec(
    spec_path: str, data_dir: str, data: Optional[Dict[str, str]] = None
) -> Tuple[str, str, str]: ...
def run_spec_text(
    text: str, place: str, data_dir: str, data: Optional[Dict[str, str]] = None
) -> Tuple[str, str, str]: ...
