"""Source specs that load the generated files: ``source_specs``."""

from __future__ import annotations

import yaml

from jingzhun.datagen._files import OUTPUT_FILES


def source_specs(data_dir: str) -> dict[str, str]:
    """YAML text of a source spec per generated source file, keyed by file stem.

    Each maps every column onto the canonical field of the same name; ``path`` is
    ``{data_dir}/{stem}.parquet``, relative to the project folder like every source path.
    The identity answer key is not a source and gets no spec.

    Parameters
    ----------
    data_dir
        Folder of the generated files, relative to the project folder (``data/generated``).
    """
    folder = data_dir.rstrip("/")
    specs = {}
    for output in OUTPUT_FILES:
        if output.target is None:
            continue
        spec = {
            "name": f"gen_{output.stem}",
            "description": f"{output.description} Written by `jingzhun generate`.",
            "path": f"{folder}/{output.filename}" if folder else output.filename,
            "format": "parquet",
            "target": output.target.value,
            "columns": {column: column for column in output.columns},
        }
        specs[output.stem] = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    return specs
