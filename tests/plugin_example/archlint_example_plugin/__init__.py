"""An example third-party archlint plugin: one rule family (XP1xx) behind one entry point."""
