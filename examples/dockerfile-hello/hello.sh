#!/bin/sh
echo "$GREETING"
echo "running as $(id -u) in $(pwd) on $(uname -s)"
