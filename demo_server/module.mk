# demo_server/module.mk - build rules for demo_server/ (filled in by its owner).
