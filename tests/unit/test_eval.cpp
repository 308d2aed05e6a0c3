// Evaluation arithmetic on cases computable by hand: MT-Bench means, the length-controlled win rate.
#include <gtest/gtest.h>

#include "eval/evaluation.h"

using namespace zephyr;

TEST(Eval, MtBenchMeansPerCategoryTurnAndOverall) {
  std::vector<ordered_json> j = {
      {{"category", "math"}, {"turn", 1}, {"rating", 4}},    {{"category", "math"}, {"turn", 2}, {"rating", 8}},
      {{"category", "math"}, {"turn", 1}, {"rating", 6}},    {{"category", "writing"}, {"turn", 1}, {"rating", 9}},
      {{"category", "writing"}, {"turn", 2}, {"rating", nullptr}}};
  const MtBenchResult r = mt_bench_means(j, {"writing", "math"});
  EXPECT_EQ(r.categories, (std::vector<std::string>{"writing", "math"}));
  EXPECT_DOUBLE_EQ(r.by_category.at("math").turn1, 5.0);
  EXPECT_DOUBLE_EQ(r.by_category.at("math").turn2, 8.0);
  EXPECT_DOUBLE_EQ(r.by_category.at("math").both, 6.0);
  EXPECT_DOUBLE_EQ(r.by_category.at("writing").both, 9.0);
  EXPECT_EQ(r.by_category.at("writing").n2, 0);
  EXPECT_DOUBLE_EQ(r.overall.both, 27.0 / 4);
  EXPECT_EQ(r.failures, 1);
}

TEST(Eval, LengthControlledWinRate) {
  // No length differences: the raw rate (ties count half).
  EXPECT_NEAR(length_controlled_win_rate({1, 1, 0, 0.5}, {0, 0, 0, 0}), 62.5, 1e-9);
  // Wins only where the answer is longer, losses where shorter, symmetric: 50% at equal length.
  EXPECT_NEAR(length_controlled_win_rate({1, 1, 0, 0, 1, 0}, {30, 10, -30, -10, 20, -20}), 50.0, 1e-6);
  // A preference independent of length (balanced lengths on both outcomes): the raw rate.
  EXPECT_NEAR(length_controlled_win_rate({1, 1, 1, 0, 1, 1, 1, 0}, {5, -5, 5, 5, -5, 5, -5, -5}), 75.0, 1e-6);
}

TEST(Eval, RadarSvgHasAnAxisPerCategoryAndAPolygonPerModel) {
  const std::string s = radar_svg({"a", "b<c", "d"}, {{"m1", {1, 2, 3}}, {"m2", {4, 5, 6}}});
  size_t polygons = 0, axes = 0;
  for (size_t p = s.find("class=\"model\""); p != std::string::npos; p = s.find("class=\"model\"", p + 1)) ++polygons;
  for (size_t p = s.find("class=\"axis\""); p != std::string::npos; p = s.find("class=\"axis\"", p + 1)) ++axes;
  EXPECT_EQ(polygons, 2u);
  EXPECT_EQ(axes, 3u);
  EXPECT_NE(s.find("b&lt;c"), std::string::npos);
}
