"""papermill's nbclient engine, writing the executed notebook less often. papermill writes the
whole notebook (validated, its charts included) when each cell starts and when it ends, between
the cells: 26 writes for a step of 13 cells, 4-5 ms each for the notebooks of a run at standard
scale 1 (measured on 2 vCPUs), about 0.5 s of a whole run. This engine writes when a cell
tagged `library-call` starts and ends (a step killed in its work shows that cell running, what
came before it shown), when a failing cell ends, and otherwise once SAVE_EVERY seconds have
passed; papermill writes at the notebook's start and end as ever, so the record it leaves is
the same."""

from __future__ import annotations

import time
from typing import Any

from papermill.engines import NBClientEngine, papermill_engines

from runbook.record.parts import LIBRARY_CALL

ENGINE = "runbook"
SAVE_EVERY = 5.0  # seconds between writes while short cells run


def _tagged(cell: Any) -> bool:
    return LIBRARY_CALL in cell.get("metadata", {}).get("tags", [])


class RecordEngine(NBClientEngine):
    """NBClientEngine whose execution manager writes the notebook when it matters (above)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        write = nb_man.save  # papermill's own write
        written, around_cell = [time.monotonic()], [False]
        start, complete = nb_man.cell_start, nb_man.cell_complete

        def save(**more: Any) -> None:  # papermill's writes around a cell are decided below;
            if not around_cell[0]:  # its autosave during a long cell's output stays as it is
                write(**more)

        def write_if(needed: bool) -> None:
            if needed or time.monotonic() - written[0] >= SAVE_EVERY:
                write()
                written[0] = time.monotonic()

        def quietly(papermills: Any, cell: Any, cell_index: int | None, more: Any) -> None:
            around_cell[0] = True
            try:
                papermills(cell, cell_index, **more)
            finally:
                around_cell[0] = False

        def cell_start(cell: Any, cell_index: int | None = None, **more: Any) -> None:
            quietly(start, cell, cell_index, more)
            write_if(_tagged(cell))

        def cell_complete(cell: Any, cell_index: int | None = None, **more: Any) -> None:
            quietly(complete, cell, cell_index, more)
            failed = cell.get("metadata", {}).get("papermill", {}).get("status") == "failed"
            write_if(_tagged(cell) or failed)

        nb_man.save, nb_man.cell_start, nb_man.cell_complete = save, cell_start, cell_complete
        try:
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
        finally:  # papermill's notebook_complete then writes the whole record
            del nb_man.save, nb_man.cell_start, nb_man.cell_complete


papermill_engines.register(ENGINE, RecordEngine)
