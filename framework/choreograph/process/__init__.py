"""Process (saga) definitions: the YAML model shared by team services and the saga tracker."""
