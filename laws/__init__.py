"""Scaling laws: fitting, uncertainty and compute allocation (pure numpy/scipy).

No I/O happens here: callers pass arrays (or dicts of column arrays) and get
frozen result objects back, so the same code serves the CLI, the pipelines and
notebooks.

Modules:
    types            FitResult, Allocation, JointFitResult
    errors           FitError: the runs cannot support this fit
    law              Law: the one place a law is special (parameters, options,
                     fit, predict, allocation rule)
    options          Options, FitOptions: frozen, unknown keys are an error
    parameters       ParameterSpace: natural values <-> the optimiser's vector
    objectives       Huber / least squares, on log L or on L
    varpro           batched NNLS over exponent grids (the global search)
    optimize         Problem, L-BFGS-B polish, batched Newton refinement
    runs             input validation, run exclusion and weights
    chinchilla       Approach 3: E + A/N^alpha + B/D^beta (optionally one shared exponent)
    isoflop          Approach 2: IsoFLOP parabolas
    approach1        Approach 1: the lower envelope of the runs' training curves
    kaplan           Kaplan et al. 2020 joint law
    broken_power_law Caballero et al. 2022 smoothly broken power law
    data_constrained Muennighoff et al. 2023 repeated-data law
    catalog          LAWS, get_law: every law by name
    bootstrap        vectorised bootstrap, by observation or by run
    resample         resample counts: by point, or by run (a cluster bootstrap)
    intervals        Samples: percentile intervals of parameters and allocations
    allocation       the allocation rules' arithmetic (closed form, numeric,
                     inference-aware); each law picks its own
    diagnostics      identifiability flags
    profiles         profiles of the objective over E and the allocation exponent a
    trust            the allocation's verdict: trusted, extrapolated, unidentified,
                     approaches_disagree
    extrapolation    fit-small, predict-large error
    joint            fits across families with shared parameters
"""
