# Shared by the photo scripts (sourced, not run): download Debian and Ubuntu packages with `apt-get download`
# through a private apt configuration, and unpack them with `dpkg-deb -x`. Nothing is installed and the host's apt
# state is left alone. The caller sets DEBS (the .deb cache), EXTRACTED (one folder per unpacked package) and APT
# (the private apt state).

# apt_download NAME SOURCE_LINE PACKAGE...: download the packages not cached yet, with apt state of its own under
# $APT/NAME. Only architecture-independent packages are fetched, so amd64 indexes serve every host.
apt_download() {
  local line="$2" dir="$APT/$1" pkg
  shift 2
  local missing=()
  for pkg in "$@"; do
    compgen -G "$DEBS/${pkg}_*.deb" >/dev/null || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" "$DEBS"
  echo "$line" >"$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.list.d"
              -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o Dir::State::status=/dev/null
              -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Acquire::Languages=none)
  compgen -G "$dir/lists/*_Packages*" >/dev/null || apt-get "${opts[@]}" update -qq
  (cd "$DEBS" && {
    apt-get "${opts[@]}" download "${missing[@]}" ||
      { apt-get "${opts[@]}" update -qq && apt-get "${opts[@]}" download "${missing[@]}"; }
  })
}

# unpack PACKAGE: unpack the cached .deb once (into a temporary folder first, so an interrupted run leaves nothing).
unpack() {
  local pkg="$1" debs
  [[ -d "$EXTRACTED/$pkg" ]] && return 0
  debs=("$DEBS/${pkg}"_*.deb)
  rm -rf "$EXTRACTED/$pkg.partial"
  mkdir -p "$EXTRACTED"
  dpkg-deb -x "${debs[-1]}" "$EXTRACTED/$pkg.partial"
  mv "$EXTRACTED/$pkg.partial" "$EXTRACTED/$pkg"
}

# ubuntu_keyring DEBIAN_KEYRING: print the path of the key that signs the Ubuntu archive, taken from Debian trixie's
# ubuntu-keyring package (verified with the Debian archive key).
ubuntu_keyring() {
  if [[ ! -r "$1" ]]; then
    echo "error: $1 is missing (install debian-archive-keyring, or set DEBIAN_KEYRING)" >&2
    return 1
  fi
  apt_download debian-trixie "deb [signed-by=$1] http://deb.debian.org/debian trixie main" ubuntu-keyring >&2
  unpack ubuntu-keyring
  echo "$EXTRACTED/ubuntu-keyring/usr/share/keyrings/ubuntu-archive-keyring.gpg"
}

# ubuntu_download PACKAGE...: download from the Ubuntu 24.04 "noble" release pocket (main and universe). Needs
# UBUNTU_KEYRING (from ubuntu_keyring).
ubuntu_download() {
  apt_download ubuntu-noble "deb [signed-by=$UBUNTU_KEYRING] http://archive.ubuntu.com/ubuntu noble main universe" "$@"
}
