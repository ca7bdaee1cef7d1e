pytest_plugins = ["testsupport.plugin"]
