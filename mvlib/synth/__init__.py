"""The synthetic two-view generator: breasts with known findings, an optional planted MLO cue,
written in the store's format (the testbed whose cause the instruments must find)."""
