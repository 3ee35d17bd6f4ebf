from osteoscan.htmlpage import SCREENING_NOTICE, page, png_figure, table


def test_page_is_self_contained_and_carries_the_notice():
    html = page("Study <x>", [table(["model", "AUC"], [["r&d", 0.9]]), png_figure(b"\x89PNG", "c")])
    assert "Study &lt;x&gt;" in html and SCREENING_NOTICE in html
    assert "r&amp;d" in html and "<td class='num'>0.9</td>" in html
    assert "data:image/png;base64,iVBORw" in html
    assert "http://" not in html and "https://" not in html
