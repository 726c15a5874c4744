"""Read each CPU's current and scaling-limit frequencies from sysfs.  No OpenTelemetry here.

``<sysfs>/devices/system/cpu/cpuN/cpufreq/scaling_{cur,min,max}_freq`` hold kHz (the kernel's
cpufreq sysfs interface).  A CPU without a ``cpufreq`` directory (most virtual machines, or no
cpufreq driver) has no frequency: it is left out, which is not an error.  A file that exists
but cannot be read or parsed is an error line, and that one figure is left out.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

CPU_DIR = re.compile(r"^cpu(\d+)$")
FIELDS = ("cur", "min", "max")


@dataclass(frozen=True)
class CPUFrequency:
    cpu: int
    hertz: dict[str, float]  # "cur" / "min" / "max" → Hz, only the ones sysfs gave


@dataclass(frozen=True)
class CPUFrequencies:
    cpus: list[CPUFrequency]
    errors: list[str] = field(default_factory=list)


class SysfsCPUFreqSource:
    def __init__(self, sysfs: str = "/sys"):
        self.base = os.path.join(sysfs, "devices", "system", "cpu")

    def read(self) -> CPUFrequencies:
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return CPUFrequencies([])
        cpus, errors = [], []
        for cpu in sorted(int(m.group(1)) for m in map(CPU_DIR.match, names) if m):
            freq_dir = os.path.join(self.base, f"cpu{cpu}", "cpufreq")
            if not os.path.isdir(freq_dir):
                continue
            hertz = {}
            for name in FIELDS:
                path = os.path.join(freq_dir, f"scaling_{name}_freq")
                try:
                    with open(path) as f:
                        hertz[name] = int(f.read(64).strip()) * 1000.0  # kHz → Hz
                except FileNotFoundError:
                    continue
                except (OSError, ValueError) as e:
                    errors.append(f"{path}: {e}")
            cpus.append(CPUFrequency(cpu, hertz))
        return CPUFrequencies(cpus, errors)

    def close(self) -> None:
        pass
