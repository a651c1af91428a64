"""Reconstruction driver shared by the domains (no domain code).

- :mod:`common.recon.errors`: :class:`ReconError` (``DemoError``), a user error reported on one line;
- :mod:`common.recon.prior_set`: :class:`Priors` (VAE or none, image UNet = IDM, video UNet = STeP) and loading;
- :mod:`common.recon.task`: :class:`ReconTask`, the inverse problem as a method sees it;
- :mod:`common.recon.run`: sampling every chosen method, summaries and truth metrics (:func:`run_task`);
- :mod:`common.recon.outputs`: ``samples.nc``, ``uq.json``, ``metrics.json``, figures, GIFs, the metrics table;
- :mod:`common.recon.cli`: the command-line edge (shared flags, names -> methods and settings, ``stepvip demo``).

The methods themselves (STeP, IDM, IDM+BCS, SVI, VISION-XL, TCVR) live in :mod:`common.methods`.
"""
