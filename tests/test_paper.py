"""Tests of elasticity.paper: the reported numbers are complete, typed and carry their source."""

from elasticity import paper


def test_table1_cells_have_sources_and_inverse_below_forward():
    table = paper.table1_resistance()
    assert len(table) == 10
    assert (table["inverse_loss"] < table["forward_loss"]).all()  # as the paper reports for every cell
    assert table["source"].str.startswith("Table 1").all()


def test_table3_shape_and_monotone_trends():
    table = paper.table3_kl_to_base()
    assert len(table) == 8 and set(table["model"]) == {"Llama2-7B", "Gemma-2B"}
    for _, rows in table.groupby("model"):
        rows = rows.sort_values("positive_size")
        assert rows["kl_to_base"].is_monotonic_increasing
        assert rows["negative_to_epsilon"].is_monotonic_decreasing


def test_claims_name_a_table_figure_theorem_or_section():
    assert all(c.source.startswith(("Table", "Figure", "Theorem", "Section")) for c in paper.CLAIMS.values())
