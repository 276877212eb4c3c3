# Hydra config groups shipped with the plugin; found through hydra_plugins/santa_generated_searchpath.
