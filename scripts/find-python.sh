#!/bin/sh
# Print the path of a Python the course supports, or nothing (exit 1). 3.11 first: constraints.txt and the
# stored outputs were made with it; then 3.12, tested by make test-compat. 3.13 and newer are never picked:
# nothing here has run the course on them (see CONTRIBUTING.md, "Python versions").
# Looks on PATH, in pyenv's versions and in Homebrew's and python.org's usual places.
#
#   sh scripts/find-python.sh                  the path of a supported Python, or exit 1
#   sh scripts/find-python.sh --check PYTHON   exit 1 (with why) for a Python older than 3.11; a warning for
#                                              one newer than 3.12, which make then uses as asked
if [ "$1" = "--check" ]; then
  version=$("$2" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1
  case "$version" in
    3.11|3.12) exit 0 ;;
    3.[0-9]|3.10)
      echo "Python $version ($2) is too old: the course needs Python 3.11 or 3.12." >&2
      echo "Delete $(dirname "$(dirname "$2")") and run make again with PYTHON=/path/to/python3.11." >&2
      exit 1 ;;
    *)
      echo "warning: Python $version ($2) is not tested with the course; 3.11 and 3.12 are." >&2
      echo "warning: if the install or the tests fail, use make lab PYTHON=/path/to/python3.11." >&2
      exit 0 ;;
  esac
fi
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
