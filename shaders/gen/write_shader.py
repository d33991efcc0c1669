"""What every generator in shaders/gen shares: write its shader, or check it.

    from write_shader import write_or_check
    write_or_check("matmul_lanes.wgsl", text)   # in shaders/gen/matmul_lanes.py

Run on its own (tests/shaders_validate.rs runs every script here with --check) it does nothing.
"""

import pathlib
import sys


def write_or_check(file_name, text):
    """Write shaders/<file_name>, or with --check exit 1 if it differs from `text` (the script
    named after the shader writes it)."""
    path = pathlib.Path(__file__).resolve().parent.parent / file_name
    if "--check" in sys.argv:
        if path.read_text() != text:
            script = file_name.replace(".wgsl", ".py")
            sys.exit(f"shaders/{file_name} differs from what shaders/gen/{script} writes")
        return
    path.write_text(text)
