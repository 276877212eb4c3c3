# Makes conf/ importable as santa.conf (santa/conf links here), so an installed santa finds its
# Hydra configs with pkg://santa.conf; conf/ stays the one source.
