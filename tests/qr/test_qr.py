# Tests for qr/: codes and posters must scan back to the exact URL, batches must hold every poster.
from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import zxingcpp
from PIL import Image, ImageDraw, PdfParser

from qr import (
    FontNotFound,
    build_pdf,
    build_zip,
    find_cjk_font,
    permanent_scene_payload,
    qr_image,
    render_poster,
    showqrcode_url,
    url_qr_png,
    write_poster_dir,
)
from qr.fonts import load_font, missing_glyphs, packaged_font
from qr.poster import fit_text

ROOT = Path(__file__).resolve().parents[2]
LONG_NAME = "市住房和城乡建设局城市管理综合行政执法支队第三大队直属一中队"
LONG_URL = (
    "https://wx.example.gov.cn/q/2025-shizhi-manyidu/"
    + quote("城管执法支队")
    + "?dept="
    + quote(LONG_NAME)
    + "&src=poster"
)


def decoded(image: Image.Image) -> list[str]:
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def poster(department: str, url: str = LONG_URL, **kwargs: object) -> bytes:
    return render_poster(
        qr_png=url_qr_png(url),
        department_name=department,
        account_name="某某市民意调查",
        survey_title="2025年度市直部门服务满意度民意调查",
        footer="某某市绩效考评委员会办公室 监制",
        **kwargs,  # type: ignore[arg-type]
    )


def dark_pixels(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    gray = image.convert("L").crop(box)
    return sum(gray.histogram()[:96])


def test_long_name_is_thirty_chars() -> None:
    assert len(LONG_NAME) == 30


def test_url_qr_png_decodes_to_the_exact_url() -> None:
    image = png_image(url_qr_png(LONG_URL))
    assert image.format == "PNG"
    assert decoded(image) == [LONG_URL]


def test_qr_image_honours_box_size_and_border() -> None:
    small, large = (
        qr_image("https://x.gov.cn/q/a/b", box_size=2, border=4),
        qr_image("https://x.gov.cn/q/a/b", box_size=6, border=4),
    )
    assert large.width == 3 * small.width
    gray = small.convert("L")
    assert gray.getpixel((7, 7)) == 255  # 4 modules of 2 px of white quiet zone
    assert gray.getpixel((8, 8)) == 0  # then the finder pattern


def test_poster_is_a4_at_150_dpi_and_scans_to_the_url() -> None:
    image = png_image(poster(LONG_NAME))
    assert image.format == "PNG"
    assert image.size == (1240, 1754)
    assert tuple(round(d) for d in image.info["dpi"]) == (150, 150)
    (code,) = zxingcpp.read_barcodes(image)
    assert code.text == LONG_URL
    assert code.position.top_right.x - code.position.top_left.x >= 600  # large on the wall


def test_qr_package_does_not_import_the_app() -> None:
    probe = "import sys, qr; sys.exit('app' in sys.modules or 'flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=False).returncode == 0


def test_department_name_is_drawn_in_real_chinese_glyphs() -> None:
    # With a font lacking Chinese, both names would come out as identical .notdef boxes.
    a, b = png_image(poster("市教育局")), png_image(poster("市公安局"))
    name_area = (60, 260, 1180, 560)  # below the header band, above the code
    assert dark_pixels(a, name_area) > 5_000
    assert a.crop(name_area).tobytes() != b.crop(name_area).tobytes()
    assert a.crop((0, 560, 1240, 1754)).tobytes() == b.crop((0, 560, 1240, 1754)).tobytes()


def test_long_name_wraps_to_two_lines_inside_the_margins() -> None:
    font_path = find_cjk_font()
    font, lines = fit_text(LONG_NAME, font_path, max_size=112, min_size=56, width=1060, max_lines=2)
    assert len(lines) == 2 and "".join(lines) == LONG_NAME  # wrapped, nothing cut off
    assert all(font.getlength(line) <= 1060 for line in lines)
    image = png_image(poster(LONG_NAME))
    below_band = 300
    assert dark_pixels(image, (0, 0, 1240, below_band - 40)) > 100_000  # the header band
    assert dark_pixels(image, (0, below_band, 60, 1754)) == 0  # margins stay clear
    assert dark_pixels(image, (1180, below_band, 1240, 1754)) == 0


def test_name_too_long_for_two_lines_is_cut_with_an_ellipsis() -> None:
    font, lines = fit_text(LONG_NAME * 3, find_cjk_font(), max_size=112, min_size=56, width=1060, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert font.size == 56


def test_poster_accepts_a_wechat_style_jpeg_code() -> None:
    # showqrcode serves a 430 px JPEG; the poster rebuilds its module grid at an integer scale.
    url = "http://weixin.qq.com/q/02abcDEFghiJKL00000071"
    buf = io.BytesIO()
    qr_image(url, box_size=7, border=3).convert("RGB").resize((430, 430)).save(buf, "JPEG", quality=80)
    image = png_image(
        render_poster(qr_png=buf.getvalue(), department_name="市教育局", account_name="某某市民意调查")
    )
    assert decoded(image) == [url]


def batch(n: int) -> list[tuple[str, bytes]]:
    urls = [f"https://wx.example.gov.cn/q/s/{quote('部门')}{i}" for i in range(n)]
    stems = ["A01-市教育局", "A01-市教育局", 'A02-财政/税务:局*?"', "a01-市教育局"][:n]
    return [
        (stem, poster(f"测试部门{i}", url)) for i, (stem, url) in enumerate(zip(stems, urls, strict=True))
    ]


def test_zip_holds_every_poster_under_unique_safe_names(tmp_path: Path) -> None:
    posters = batch(4)
    seen: list[tuple[int, int]] = []
    out = tmp_path / "posters.zip"
    names = build_zip(posters, out, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == names
        assert len({n.casefold() for n in names}) == 4
        assert all(re.fullmatch(r'[^/\\:*?"<>|]+\.png', n) for n in names)
        for i, name in enumerate(names):
            image = png_image(archive.read(name))
            assert decoded(image) == [f"https://wx.example.gov.cn/q/s/{quote('部门')}{i}"]
    assert names[0] == "A01-市教育局.png" and names[1] == "A01-市教育局-2.png"


def test_pdf_has_one_a4_page_per_poster_and_each_scans(tmp_path: Path) -> None:
    n = 11  # more than one append chunk
    posters = [(f"p{i}", poster("市教育局", f"https://x.gov.cn/q/s/{i}")) for i in range(n)]
    out = io.BytesIO()
    assert build_pdf(iter(posters), out) == n  # a generator: the length is not known
    data = out.getvalue()
    assert data.startswith(b"%PDF-")
    parser = PdfParser.PdfParser(buf=data)
    assert len(parser.pages) == n
    media_box = parser.read_indirect(parser.pages[0])[b"MediaBox"]
    assert [round(v) for v in media_box] == [0, 0, 595, 842]  # A4 in points
    jpegs = [m.start() for m in re.finditer(rb"\xff\xd8\xff", data)]
    assert len(jpegs) == n
    urls = sorted(decoded(png_image(data[start:]))[0] for start in jpegs)
    assert urls == sorted(f"https://x.gov.cn/q/s/{i}" for i in range(n))


def test_write_poster_dir(tmp_path: Path) -> None:
    paths = write_poster_dir(batch(2), tmp_path / "out")
    assert [p.name for p in paths] == ["A01-市教育局.png", "A01-市教育局-2.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_font_found_has_simplified_chinese_face() -> None:
    path = find_cjk_font()
    assert path.is_file()
    assert load_font(path, 20).getname()[0]  # loads


def test_the_font_comes_with_the_install_before_any_system_font() -> None:
    # No apt step: the Noto Sans CJK of the PyPI font package is there and found first.
    path = packaged_font()
    assert path is not None and "site-packages" in path.parts
    assert find_cjk_font() == path
    assert load_font(path, 20).getname()[0] == "Noto Sans CJK SC"


def test_explicit_font_path_still_wins(tmp_path: Path) -> None:
    own = tmp_path / "CityHouseFont.ttc"
    own.write_bytes(packaged_font().read_bytes())  # type: ignore[union-attr]
    assert find_cjk_font(own) == own
    assert decoded(png_image(poster("市教育局", font_path=own))) == [LONG_URL]


def test_poster_covers_every_character_of_the_names_and_scans() -> None:
    # Rare place-name characters included: 亳州, 黟县, 濉溪, 涪陵, 鄱阳.
    names = ["亳州市谯城区市场监督管理局", "黟县宏村镇人民政府", "濉溪县", "涪陵区", "鄱阳县卫生健康委员会"]
    font = find_cjk_font()
    for name in names:
        assert missing_glyphs(font, name, "Bold") == "", name
        assert missing_glyphs(font, name) == "", name
        assert decoded(png_image(poster(name))) == [LONG_URL], name
    assert missing_glyphs(font, "中\U0010fffd") == "\U0010fffd"  # the check does see a gap


def test_headings_are_set_in_the_bold_weight() -> None:
    font = find_cjk_font()
    ink = {}
    for weight in ("Regular", "Bold"):
        canvas = Image.new("L", (400, 120), 0)
        ImageDraw.Draw(canvas).text((0, 0), "市教育局", font=load_font(font, 96, weight), fill=255)
        ink[weight] = sum(canvas.histogram()[129:])
    assert ink["Bold"] > 1.3 * ink["Regular"]


def test_missing_explicit_font_is_a_one_line_error() -> None:
    with pytest.raises(FontNotFound) as excinfo:
        find_cjk_font("/nonexistent/fonts/NotoSansCJK-Bold.ttc")
    message = str(excinfo.value)
    assert "\n" not in message
    assert "/nonexistent/fonts/NotoSansCJK-Bold.ttc" in message
    assert "manimgx-fonts-cjk" in message and "qr.font_path" in message


def test_font_without_chinese_is_refused(tmp_path: Path) -> None:
    not_a_font = tmp_path / "fake.ttf"
    not_a_font.write_bytes(b"not a font")
    with pytest.raises(FontNotFound, match="no Chinese glyphs"):
        find_cjk_font(not_a_font)
    with pytest.raises(FontNotFound):
        render_poster(
            qr_png=url_qr_png("https://x.gov.cn"),
            department_name="市教育局",
            account_name="某某市民意调查",
            font_path=not_a_font,
        )


def test_permanent_scene_payload() -> None:
    assert permanent_scene_payload("s=2025-manyidu;d=A01") == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "s=2025-manyidu;d=A01"}},
    }
    assert permanent_scene_payload("x" * 64)["action_info"]["scene"]["scene_str"] == "x" * 64


@pytest.mark.parametrize("scene", ["", "x" * 65])
def test_scene_length_is_checked(scene: str) -> None:
    with pytest.raises(ValueError, match="1..64 characters"):
        permanent_scene_payload(scene)


def test_showqrcode_url_encodes_the_ticket() -> None:
    ticket = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23s+w=="
    url = showqrcode_url("https://mp.weixin.qq.com/", ticket)
    assert url == (
        "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="
        + ticket.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
    )
