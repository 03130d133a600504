"""Evaluations beside the certificate: the attacks of Table 9 and AutoAttack
(:mod:`~bench.evaluation.attacks`), adaptive attacks on a vote (:mod:`~bench.evaluation.adaptive`),
gradient-masking checks (:mod:`~bench.evaluation.masking`), the certificate audit
(:mod:`~bench.evaluation.audit`) and the baselines' native certificates
(:mod:`~bench.evaluation.native`)."""
