#!/bin/sh
# Print the path of a Python the course supports, or nothing (exit 1). 3.11 first: constraints.txt and the
# stored outputs were made with it (and its torch wheel is small); then 3.12, tested by make test-compat.
# Looks on PATH, in pyenv's versions and in Homebrew's and python.org's usual places.
for version in 3.11 3.12; do
  for candidate in "python$version" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version" \
      /opt/homebrew/bin/python"$version" /usr/local/bin/python"$version" \
      /Library/Frameworks/Python.framework/Versions/"$version"/bin/python"$version" python3 python; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if "$path" -c "import sys; sys.exit(sys.version_info[:2] != (${version%.*}, ${version#*.}))" 2>/dev/null \
        && "$path" -c "import venv, ensurepip" 2>/dev/null; then
      echo "$path"
      exit 0
    fi
  done
done
exit 1
