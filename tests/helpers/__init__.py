"""Test harness: real servers (nginx, a wsnotify stand-in), certificates and an Ansible runner.

Reusable by other test suites of the project: every helper starts real processes on 127.0.0.1
free ports in a temp dir and stops them by PID.
"""
