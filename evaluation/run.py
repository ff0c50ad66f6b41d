"""Evaluate a trained ofa_plus model on task cards (see `ofa_plus.evaluation`).

accelerate launch evaluation/run.py --model runs/x/final --cards task_cards/default --output results.json
python evaluation/run.py --model runs/x/final --output results.json      # the model's own cards
"""

from ofa_plus.evaluation import main

if __name__ == "__main__":
    main()
