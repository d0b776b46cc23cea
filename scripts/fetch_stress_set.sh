#!/usr/bin/env bash
# Fetch the evaluation stress set: 53 real photographs, longer side >= 2048 px, of content that is hard for the
# rescaler (fog, night, sky gradients, sunsets, snow, water, flat backgrounds, people, text, textures).
#
#   scripts/fetch_stress_set.sh [DEST]      # default DEST: ~/.cache/tadm/stress
#
# Evaluation only, never training (docs/evaluation/stress-set.md). The photos ship inside Debian and Ubuntu
# wallpaper packages. They are fetched with `apt-get download` (nothing is installed) through a private apt
# configuration under DEST/apt pinned to two suites, Debian trixie and the Ubuntu 24.04 "noble" release pocket, so
# every machine gets the same files and the host's apt state is left alone; `dpkg-deb -x` unpacks them. Every photo
# is checked against its SHA-256 and written once as PNG under DEST/images/ at full size (no resizing) with its EXIF
# orientation applied; DEST/SOURCES.tsv says where each came from. Re-running skips what is already there.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-${HOME}/.cache/tadm/stress}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
DEBS="$DEST/debs"
EXTRACTED="$DEST/extracted"
IMAGES="$DEST/images"
APT="$DEST/apt"
DEBIAN_KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"

# Packages taken from Debian trixie; every other package of the table comes from Ubuntu noble. ubuntu-keyring
# (Debian) carries the key that signs the Ubuntu archive.
DEBIAN_PACKAGES=(budgie-backgrounds libelementary-data)

# name <TAB> package <TAB> path inside the package <TAB> SHA-256 of that file. The name's prefix is the category.
PHOTOS="$(cat <<'EOF'
fog-forest-edge	ubuntu-wallpapers-trusty	usr/share/backgrounds/Foggy_Forest_by_Jake_Stewart.jpg	2d05bae52ea93b539b171153471f73c67f7a3be141fa8c58bf24ae3b11f8abdf
fog-valley-treetops	ubuntu-wallpapers-xenial	usr/share/backgrounds/TCP118v1_by_Tiziano_Consonni.jpg	0b9ecc5872da19a7cb678ce5540763ada8e3cc7a5ff3e50ab206ec722f5e9ecb
fog-railway-pier	xubuntu-community-wallpapers-bionic	usr/share/xfce4/backdrops/leonardo_cardozo_ferreira__peachy__4k.jpg	575a3b3b3f6f8936843945d06a07a3b22c58ce75db8fc21637c12861642892e0
fog-deer-meadow	ubuntu-wallpapers-oneiric	usr/share/backgrounds/Buck_off!_by_SirPecanGum.jpg	e107e4837886ffefedbb7b62d6cd94963dd132e541efc378c7f77641e5d0cc2c
fog-tea-gardens	budgie-backgrounds	usr/share/backgrounds/budgie/tea-gardens.jpg	1d7377e9903b29a3e983f1184a3112e50a6b45e65382c491f5c02e20e2861e20
night-light-trails	ubuntu-gnome-wallpapers-utopic	usr/share/backgrounds/ubuntu-gnome/light_trails_by_giridhar_mahadevan.jpg	4f950e681c6787eb6820f26d76daaffd322493a2c8c0ff6cea393841c123bd35
night-city-aerial	ubuntu-wallpapers-xenial	usr/share/backgrounds/Night_lights_by_Alberto_Salvia_Novella.jpg	c5dd4d509059f39f82881506671fccf7399e4e2d998a087c9150056385b5b4d1
night-milky-way	ubuntu-wallpapers-cosmic	usr/share/backgrounds/Milky_Way_before_the_dawn_by_Tomas_Sobek.jpg	71ef1fe8c10f3c856b37f0d696cee88c85f6c1989cc759f68e272e212d5f209d
night-singapore-skyline	budgie-backgrounds	usr/share/backgrounds/budgie/singaporean-cityscape.jpg	f636392cae58e2cfd478838a8e4d3a3aa0b7c1ecf7be77932c394d649f783363
night-lowkey-books	edubuntu-wallpapers	usr/share/backgrounds/edubuntu-23.04_debby-hudson.jpg	6cdca8a7daf614452c36e1c6f271ad97c7a1f9327d7646a6fc987b5d148eca0d
sky-teal-gradient	xubuntu-community-wallpapers-trusty	usr/share/xfce4/backdrops/traslasierra.jpg	06272676037deb9ec437d20fa734ea00cbf66c6a671f05ed7aeef673f868ba11
sky-dusk-tree	xubuntu-community-wallpapers-xenial	usr/share/xfce4/backdrops/Untitled_0535_by_Mike_Sinko.jpg	199261798e47c51257327ceacc0f27c171c5d2c41698d78eb32e294d5c52d295
sky-blue-plain	ubuntu-gnome-wallpapers-xenial	usr/share/backgrounds/ubuntu-gnome/climbing-up.jpg	143bf68c82226f95f6aa05a4b8b469910594e29450b6379529b74e6d4d374b14
sky-desert-dune	budgie-backgrounds	usr/share/backgrounds/budgie/extreme-desert-hike.jpg	beed5bc6a2c99b026f869b588be5e32b0c77adb209535975d0e015eb5e7da839
sky-clouds-branches	ubuntu-gnome-wallpapers-xenial	usr/share/backgrounds/ubuntu-gnome/sky-desktop.jpg	b04488fbb9a2ab2cb594f9c5d4410126f3199845761d6c8027bebee1d671c3be
sunset-lake-mirror	ubuntu-wallpapers-jammy	usr/share/backgrounds/Mirror_by_Uday_Nakade.jpg	fb5b72d8959970be209711278668eecc6bedf053a6a137cf59677438129381eb
sunset-sun-disc	ubuntu-gnome-wallpapers-utopic	usr/share/backgrounds/ubuntu-gnome/sunset_by_isaías_hernández.jpg	d2e33784d8c69d3729848c6b71285782d85c903c8e49add50211c4502bd29ba0
sunset-mountain-layers	ubuntu-wallpapers-groovy	usr/share/backgrounds/Landscape_Photography_Of_Mountains_by_Simon_Berger.jpg	1c37f8452f2c618d99d1dcde1ac9b01a0e50ae5d5b8433d9948d6f7074b83b24
sunset-harbour-red	xubuntu-community-wallpapers-bionic	usr/share/xfce4/backdrops/soren_krarup_olesen__east_harbour_sunrise__4k.jpg	15a9eb17c14bbf8d417f8ef3d66a0139789597f6762f96ae2631f8ef6fc40f73
sunset-city-street	budgie-backgrounds	usr/share/backgrounds/budgie/beacon-street-sunset.jpg	d77a97bfbb28fa6b2b4c93ad2857894afd38c13f450655942be077118bb9e3f1
snow-highkey-dunes	ubuntu-wallpapers-utopic	usr/share/backgrounds/Horses_on_sand_dunes_by_Matthias_Siewert.jpg	4c6c2d817f0fab367387deaa1edaa47f0140753955cff600aca5a4f57a9a2670
snow-trekkers	budgie-wallpapers-impish	usr/share/backgrounds/budgie/trekking_by_aatlas.jpg	dec7f97d4f96927b8b68c36cd303b8e5007f6a8949e977dcc508f4144d46bf48
snow-peaks	ubuntu-wallpapers-saucy	usr/share/backgrounds/Mountains_by_JamesPickles.jpg	d5af755c41b916bc922e5f55c7b526b7fb9c20df2daf5a12cad09fab7fcc6f79
snow-pines	ubuntu-gnome-wallpapers-yakkety	usr/share/backgrounds/ubuntu-gnome/snowy_pines_above_planica_by_jan_makovecki.jpg	06e2f434740367b64700b467e9b99bc67060805ac18d1e5e552a6302aeb02256
snow-highkey-frost	ubuntu-wallpapers-quantal	usr/share/backgrounds/Frozen_by_fernando_garcila_redondo.jpg	0637245003cc2e40aeb94dd2dd59f2389adfbf6fa8cb57e43fd3cf110fdc8db0
water-aerial-surf	ubuntu-mate-wallpapers-photos	usr/share/backgrounds/ubuntu-mate-photos/nattu-adnan-328570.jpg	49ec32bbe709005bc14d2f0906fb079f68daaf86a62961f821099059156921b7
water-rough-sea	budgie-wallpapers-eoan	usr/share/backgrounds/budgie/rough_water_by_ryan_mcgilchrist.jpg	cbd20199a469097cd1f723676b1ce9ac7ee1970b5f9a3ec496f4489edc6cee8e
water-calm-horizon	budgie-wallpapers-eoan	usr/share/backgrounds/budgie/sea_sky_light_by_didier_baertschiger.jpg	720d210fe8497d72bbe10baa3d6c7145ff04515dce6205169c3bcd7906ab8b79
water-niagara-falls	ubuntucinnamon-wallpapers-mantic	usr/share/backgrounds/ubuntucinnamon/mantic/Niagara_Falls_by_Joshua_Park.jpg	77b4f93012364a263a83dd5af66cb339c06045a2238a9b3034702340b6eb26da
water-clear-lagoon	ubuntu-wallpapers-artful	usr/share/backgrounds/Green_Island_by_Radu_Galan.jpg	6a5ab207294849ac2dc7d8a34fa9594eea7f23004f39069668b00f955cc71a76
flat-yellow-film	ubuntu-wallpapers-groovy	usr/share/backgrounds/Camera_Film_by_Markus_Spiske.jpg	44664ecf7a6acb15f6c2c7ce75c159c67abffe2713c6d61e885b2a367f8da007
flat-white-pencils	ubuntu-wallpapers-groovy	usr/share/backgrounds/Colored_Pencils_by_Jess_Bailey.jpg	3bd15e965fd3fb30b74c2a157537deb9a8fe8f349bab1ce3ba3fd38afad3c83b
flat-grey-sky-plane	ubuntu-wallpapers-trusty	usr/share/backgrounds/Sea_Fury_by_Ian_Worrall.jpg	bbbb515597572b4490e91b7e7a2a973d8b9a11481a0c7fa952b6f5fd8abefa18
flat-white-pomegranate	ubuntu-wallpapers-artful	usr/share/backgrounds/Red_delight_by_Rishikesh_Gawade.jpg	113e169b44379575e6d72df57ab62b34f8d9fafadff89bf8340908ebb07a32f8
flat-wall-apple	edubuntu-wallpapers	usr/share/backgrounds/edubuntu-23.04_element5-digital.jpg	c8261f6384944330dc8e12bbdb462b5c394c850b266c95fa6691ebd3408dfc08
people-faces-indoor	libelementary-data	usr/share/elementary/images/insanely_huge_test_image.jpg	0e962855a532467699763e5cedceda10419b24d5739930cf6bc08869d6559731
people-woman-church	budgie-wallpapers-groovy	usr/share/backgrounds/budgie/eglise-saint-honorat-by-peter-heeling.jpg	0ac38e72df9e93c108986010f9ae672b79dd8bca343465d07522847112327bf0
people-selfie-hikers	budgie-wallpapers-groovy	usr/share/backgrounds/budgie/selfie-hikers-on-cobblestone-hill-by-brodie-vissers.jpg	717c432b45a97b83ae093a35ea113c3630b35640ede5c1327838bb3e7fb1510a
people-crowd-oculus	ubuntucinnamon-wallpapers-noble	usr/share/backgrounds/ubuntucinnamon/noble/Oculus_Plaza_by_Joshua_Peisach.jpg	97b4dcd6ef25adc052bd2818a315719b0dd983c0b33997fdf1b50a0082ee172a
people-fountain-square	ubuntucinnamon-wallpapers-focal	usr/share/backgrounds/ubuntucinnamon/focal/Fountain_at_Washington_Sq_Pk_by_Joshua_Peisach.jpg	38299a48e401a84fc3ac25f6b0e471fe28eeed83db7a27c77c1c27e002eab242
people-concert	ubuntu-wallpapers-vivid	usr/share/backgrounds/Euphoria!_by_Tomasino.cz.jpg	6e81947700fd988079eb2994273e1ecf14b544b05e957c6c4a81762162955e60
text-one-way-sign	budgie-wallpapers-impish	usr/share/backgrounds/budgie/one-way_by_ryan_mcguire.jpg	19ddb5f9aea952234575f0935d8a64c814c9264bda7247980bd7c56b763b4416
text-shop-sign-brick	budgie-wallpapers-impish	usr/share/backgrounds/budgie/alley-antique_by_brett_sayles.jpg	d319e2a67d78bc993491b70c68e321d442a760efc1b4d3ba5fadfa9b6665e477
text-subway-2nd-ave	ubuntu-wallpapers-focal	usr/share/backgrounds/matt-mcnulty-nyc-2nd-ave.jpg	7231c2921ac2db970ee859f21264f0a79545d3a891392068621ab0eb99ce64f9
text-spice-labels	ubuntu-wallpapers-bionic	usr/share/backgrounds/Spices_in_Athens_by_Makis_Chourdakis.jpg	3d971c9a4ad144c961c402b572a51a90c6885c6ccd99dd95944a9d87a2c339b3
text-typewriter-keys	ubuntu-wallpapers-raring	usr/share/backgrounds/Brother_typewriter_by_awdean1.jpg	fb83a7f2d1f4cb14337dcd0f588f1e665a27b66d92ff4c13befd937b10fc26ed
text-street-signs	ubuntucinnamon-wallpapers-focal	usr/share/backgrounds/ubuntucinnamon/focal/Holiday_City_by_Roman_Vizer.jpg	bac6035d4b90bac35778536fdd4c4b11b59339742b51704ae5cc70a218cc8cb0
texture-building-facade	ubuntu-gnome-wallpapers-yakkety	usr/share/backgrounds/ubuntu-gnome/wall27-2016_by_k_alam1985.jpg	80679c8c12f1ec8218bc13c17b1c4ceb8c2e02c6c2468efb0d133f482bb56911
texture-roof-tiles	ubuntu-wallpapers-quantal	usr/share/backgrounds/Roof_Tiles_by_Finn_Sturdy.jpg	71eb4ba3d315b3ab37501ba80d09b4f720a3d84b66fdb7f5ecde05ef0868acbe
texture-gravel	xubuntu-community-wallpapers-trusty	usr/share/xfce4/backdrops/justrocks.jpg	66492370b86a463e3e4f0d69bdc4c48458dc9cf34ef4c1e5708e6fa069c90b2c
texture-foliage-lily	ubuntu-wallpapers-artful	usr/share/backgrounds/Lily_of_the_Valley_by_Robert_Slotte.jpg	3522db1dee534ea9e60f992ffcda6ed90c8a06aeb415ed6a8cbb5240dd017787
texture-casa-mila	budgie-backgrounds	usr/share/backgrounds/budgie/casa-mila.jpg	5c7b24e463e3ca90cfead8c7fb4a0e0362980e7ff43aa5e877d6a186338977bf
texture-wood-chips	ubuntu-gnome-wallpapers-yakkety	usr/share/backgrounds/ubuntu-gnome/trucioli_by_filippo_de_angeli.jpg	8bb07d00859556dec190299544a0b3a1bb812e0ac81e51988becf201b8381758
EOF
)"

# shellcheck source=scripts/apt_photos.sh
source "$REPO/scripts/apt_photos.sh"

# Fetch only while a photo is missing, so deleting debs/ and extracted/ after a complete run costs nothing.
need_fetch=0
while IFS=$'\t' read -r name _; do
  [[ -f "$IMAGES/$name.png" ]] || need_fetch=1
done <<<"$PHOTOS"

mkdir -p "$IMAGES"
if ((need_fetch)); then
  mkdir -p "$DEBS" "$EXTRACTED"

  # 1. Debian: the Ubuntu archive key and the Debian photo packages.
  UBUNTU_KEYRING="$(ubuntu_keyring "$DEBIAN_KEYRING")"
  apt_download debian-trixie "deb [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian trixie main" \
    "${DEBIAN_PACKAGES[@]}"

  # 2. Ubuntu: every other package of the table.
  mapfile -t ubuntu_packages < <(cut -f2 <<<"$PHOTOS" | sort -u |
                                 grep -vxF -f <(printf '%s\n' "${DEBIAN_PACKAGES[@]}"))
  ubuntu_download "${ubuntu_packages[@]}"

  # 3. Unpack.
  for pkg in "${DEBIAN_PACKAGES[@]}" "${ubuntu_packages[@]}"; do
    unpack "$pkg"
  done
fi

# 4. Check, then write each photo as PNG: EXIF orientation applied, RGB, full size.
printf '%s\n' "$PHOTOS" >"$DEST/photos.tsv"
"$PYTHON" - "$DEST/photos.tsv" "$EXTRACTED" "$IMAGES" "$DEST/SOURCES.tsv" <<'EOF'
import collections
import hashlib
import sys
from pathlib import Path

from PIL import Image, ImageOps

table, extracted, out_dir, sources = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
rows = [line.split("\t") for line in table.read_text(encoding="utf-8").splitlines() if line.strip()]
written = skipped = 0
per_category: collections.Counter[str] = collections.Counter()
lines = ["name\tpackage\tpath\twidth\theight"]
for name, package, path, sha256 in rows:
    out = out_dir / f"{name}.png"
    if out.is_file():
        skipped += 1
    else:
        src = extracted / package / path
        if not src.is_file():
            sys.exit(f"error: package {package} no longer contains {path} (for {name}); the stress set needs updating")
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        if digest != sha256:
            sys.exit(f"error: {path} in package {package} changed (sha256 {digest}, expected {sha256}) (for {name})")
        with Image.open(src) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        partial = out.with_suffix(".partial.png")
        image.save(partial)
        partial.replace(out)
        written += 1
    with Image.open(out) as done:
        width, height = done.size
    if max(width, height) < 2048:
        sys.exit(f"error: {out} is {width}x{height}; the stress set needs a longer side of at least 2048 px")
    lines.append(f"{name}\t{package}\t{path}\t{width}\t{height}")
    per_category[name.split("-", 1)[0]] += 1
sources.write_text("\n".join(lines) + "\n", encoding="utf-8")
print(f"{written} photos written, {skipped} already there, in {out_dir}")
print("per category: " + ", ".join(f"{category} {count}" for category, count in per_category.items()))
EOF
echo "stress set: $IMAGES ($(find "$IMAGES" -name '*.png' ! -name '*.partial.png' | wc -l) files), sources: $DEST/SOURCES.tsv"
