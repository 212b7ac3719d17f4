"""The standing adversarial suite (issue 18): attacks on a real ``otelkv serve``, each asserting
peak RSS within the budget, legitimate traffic served and no acknowledged record lost
(``make hostile`` at full length; ``make test`` runs them short)."""
