"""Specialists vs generalist on the same cards and recipe (see `ofa_plus.compare`).

python evaluation/compare.py --cards task_cards/default --steps-per-task 300 --output runs/compare \
    --budgets 0.25 0.5 1 --limit 200 --image-size 64 --lr 3e-4 --batch-size 8
"""

from ofa_plus import train
from ofa_plus.compare import main

if __name__ == "__main__":
    main()
    train.end_processes()
