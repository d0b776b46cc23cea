#!/usr/bin/env bash
# Gather the nano model's training photographs into a cache folder outside the repository.
#
#   scripts/gather_training_photos.sh [DEST]      # default DEST: ~/.cache/tadm/photos
#
# Sources (docs/training-data.md): the real photographs shipped inside ten Debian packages, fetched with
# `apt-get download` (nothing is installed) and unpacked with `dpkg-deb -x`; those of Ubuntu wallpaper packages
# listed in scripts/training_photos_ubuntu.tsv (fetched through a private apt configuration pinned to Ubuntu 24.04
# "noble", each file checked against its SHA-256); and the Wikimedia Commons photos in WIKI_DIR (default:
# shared/data/wiki beside the repository; skipped, with a notice, when the folder is absent).
# Every photo is written once as PNG under DEST/images/ with its EXIF orientation applied and, when its longer
# side exceeds TADM_PHOTO_MAX_SIDE (default 1600), mildly down-resized: the data loader decodes a whole file for
# every random crop, and a 20 MP JPEG per crop would make the CPU run data-bound. Kodak is never used (it is the
# evaluation set). Re-running skips what is already there.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WIKI_DIR="${WIKI_DIR:-$(dirname "$REPO")/shared/data/wiki}"
DEST="${1:-${HOME}/.cache/tadm/photos}"
MAX_SIDE="${TADM_PHOTO_MAX_SIDE:-1600}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
DEBS="$DEST/debs"
EXTRACTED="$DEST/extracted"
IMAGES="$DEST/images"
APT="$DEST/apt"
DEBIAN_KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
UBUNTU_TABLE="$REPO/scripts/training_photos_ubuntu.tsv"
# shellcheck source=scripts/apt_photos.sh
source "$REPO/scripts/apt_photos.sh"

PACKAGES=(lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers lxqt-themes
          palapeli-data kphotoalbum opencv-doc python3-skimage libjxl-testdata)
PLASMA=(BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am)
LXQT=(Butterfly-Kenneth-Wimer.jpg Valendas.png after-the-rain.jpg appleflower.png beam.png butterfly.png cloud.png
      drop.png flowers.png fog.jpg this-is-not-windows.jpg)
OPENCV=(aloeL.jpg baboon.jpg building.jpg ela_original.jpg leuvenA.jpg graf1.png scenetext01.jpg scenetext02.jpg
        scenetext03.jpg scenetext04.jpg scenetext05.jpg)

mkdir -p "$DEBS" "$EXTRACTED" "$IMAGES"

# 1. Download the packages that are not cached yet (apt-get download needs current package lists).
missing=()
for pkg in "${PACKAGES[@]}"; do
  compgen -G "$DEBS/${pkg}_*.deb" >/dev/null || missing+=("$pkg")
done
if ((${#missing[@]})); then
  (cd "$DEBS" && { apt-get download "${missing[@]}" || { apt-get update -qq && apt-get download "${missing[@]}"; }; })
fi

# 2. Unpack each package once.
for pkg in "${PACKAGES[@]}"; do
  [[ -d "$EXTRACTED/$pkg" ]] || dpkg-deb -x "$DEBS/${pkg}"_*.deb "$EXTRACTED/$pkg"
done

# 2b. The Ubuntu photos: only while one of them has no PNG yet, so a complete cache needs no network.
mapfile -t ubuntu_rows < <(grep -v '^#' "$UBUNTU_TABLE")
ubuntu_missing=0
for row in "${ubuntu_rows[@]}"; do
  IFS=$'\t' read -r pkg path _ <<<"$row"
  name="$(basename "$path")"
  [[ -f "$IMAGES/${pkg}__${name%.*}.png" ]] || ubuntu_missing=1
done
if ((ubuntu_missing)); then
  UBUNTU_KEYRING="$(ubuntu_keyring "$DEBIAN_KEYRING")"
  mapfile -t ubuntu_packages < <(printf '%s\n' "${ubuntu_rows[@]}" | cut -f1 | sort -u)
  ubuntu_download "${ubuntu_packages[@]}"
  for pkg in "${ubuntu_packages[@]}"; do unpack "$pkg"; done
  # Every file as recorded: a package that changed a photo stops the run here, naming the file.
  printf '%s\n' "${ubuntu_rows[@]}" | awk -F'\t' -v root="$EXTRACTED" '{print $3 "  " root "/" $1 "/" $2}' |
    sha256sum --check --quiet || { echo "error: an Ubuntu photo is missing or changed (above)" >&2; exit 1; }
fi

# 3. The list of source photos, one path a line (the tables of docs/training-data.md).
[[ -d "$WIKI_DIR" ]] || echo "no Wikimedia photos at $WIKI_DIR (set WIKI_DIR): gathering the Debian packages' alone" >&2
list="$DEST/sources.txt"
{
  find "$EXTRACTED/lomiri-wallpapers-16.04/usr/share/backgrounds" -name '*.jpg' ! -name 'umang_*'
  echo "$EXTRACTED/lomiri-wallpapers-20.04/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"
  find "$EXTRACTED/mate-backgrounds/usr/share/backgrounds/mate/nature" -name '*.jpg'
  for name in "${PLASMA[@]}"; do
    echo "$EXTRACTED/plasma-workspace-wallpapers/usr/share/wallpapers/$name/contents/images/2560x1600.jpg"
  done
  for name in "${LXQT[@]}"; do echo "$EXTRACTED/lxqt-themes/usr/share/lxqt/wallpapers/$name"; done
  find "$EXTRACTED/palapeli-data/usr/share/palapeli/collection" -name '*.jpg'
  find "$EXTRACTED/kphotoalbum/usr/share/kphotoalbum/demo" -name '*.jpg'
  for name in "${OPENCV[@]}"; do
    find "$EXTRACTED/opencv-doc/usr/share/doc/opencv-doc/examples" -name "$name" | head -n 1
  done
  echo "$EXTRACTED/python3-skimage/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
  echo "$EXTRACTED/libjxl-testdata/usr/share/libjxl-testdata/jxl/flower/flower.png"
  for row in "${ubuntu_rows[@]}"; do
    IFS=$'\t' read -r pkg path _ <<<"$row"
    echo "$EXTRACTED/$pkg/$path"
  done
  if [[ -d "$WIKI_DIR" ]]; then
    find "$WIKI_DIR" -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.jpeg' \)
  fi
} | grep -v '/kodak' | sort -u > "$list"

# 4. Normalise: EXIF orientation, RGB, longer side <= MAX_SIDE, PNG.
"$PYTHON" - "$list" "$IMAGES" "$MAX_SIDE" <<'EOF'
import hashlib
import sys
from pathlib import Path

from PIL import Image, ImageOps

list_file, out_dir, max_side = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
written = skipped = 0
used = set()
for line in list_file.read_text().splitlines():
    src = Path(line)
    parts = src.parts
    package = next((p for p in parts if p in {"extracted"}), None)
    tag = parts[parts.index("extracted") + 1] if package else "wiki"
    name = f"{tag}__{src.stem}"
    if name in used:  # e.g. every Plasma wallpaper is NAME/contents/images/2560x1600.jpg
        name += "__" + hashlib.sha1(str(src).encode()).hexdigest()[:8]
    used.add(name)
    out = out_dir / f"{name}.png"
    if out.is_file():
        skipped += 1
        continue
    if not src.is_file():
        sys.exit(f"missing source photo {src} (did a package change its layout?)")
    with Image.open(src) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if max(image.size) > max_side:
        factor = max_side / max(image.size)
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
    image.save(out)
    written += 1
print(f"{written} photos written, {skipped} already there, in {out_dir}")
EOF
echo "training photos: $IMAGES ($(find "$IMAGES" -name '*.png' | wc -l) files)"
