"""Speed of the symbolic side (issue 2 targets): derive + generate ring_ei <= 5 s on 2 cores;
importing a generated module <= 0.3 s.

    python benchmarks/bench_derive.py

Each figure is measured in a fresh interpreter (imports included, as a user sees it), three times;
the best and the median are printed with their ratio to the target.
"""
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - t0


def main():
    baseline = [run("pass") for _ in range(3)]
    gen = [run("from derive.loader import load_model\n"
               "from derive.codegen import generate_source\n"
               "generate_source(load_model('models/ring_ei.py'), 'models/ring_ei.py')") for _ in range(3)]
    imp = [run("import generated.ring_ei") for _ in range(3)]
    imp_np = [run("import numpy") for _ in range(3)]
    own = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c",
                              "import time, numpy\nt0 = time.perf_counter()\nimport generated.ring_ei\n"
                              "print(time.perf_counter() - t0)"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        own.append(float(out))
    print(f"empty interpreter start:            best {min(baseline):.3f} s")
    print(f"derive + generate ring_ei:          best {min(gen):.2f} s, median {statistics.median(gen):.2f} s "
          f"(target 5 s: ratio {min(gen) / 5:.2f})")
    print(f"import generated.ring_ei (+numpy):  best {min(imp):.3f} s, median {statistics.median(imp):.3f} s "
          f"(target 0.3 s: ratio {min(imp) / 0.3:.2f})")
    print(f"  of which 'import numpy' alone:    best {min(imp_np):.3f} s")
    print(f"import generated.ring_ei, numpy already imported: best {min(own) * 1e3:.1f} ms "
          f"(ratio to 0.3 s: {min(own) / 0.3:.3f})")


if __name__ == "__main__":
    main()
