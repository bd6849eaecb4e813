"""The microcontroller boards the MCU cost model knows: clock, SRAM and flash (data only, so a
predictor reads it without the calibration code and its reference models)."""

from __future__ import annotations

from dataclasses import dataclass

from nas.errors import NasError


@dataclass(frozen=True)
class Board:
    target: str
    name: str
    core: str
    clock_mhz: float
    sram_kb: float
    flash_kb: float


BOARDS = {
    "mcu-m7": Board("mcu-m7", "DISCO_F746NG", "Cortex-M7", 216.0, 320.0, 1024.0),
    "mcu-m4": Board("mcu-m4", "NUCLEO_L4R5ZI", "Cortex-M4", 120.0, 640.0, 2048.0),
}


def board_of(target: str) -> Board:
    if target not in BOARDS:
        raise NasError(f"unknown MCU target {target!r} (known: {', '.join(BOARDS)})")
    return BOARDS[target]
