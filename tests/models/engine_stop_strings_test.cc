// StopStringFilter alone (no model): text released vs held back, matches spread over pushes,
// earliest match wins, include_stop_str_in_output, flush.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/engine/stop_strings.h"

namespace tessera::engine {
namespace {

std::string feed(StopStringFilter& f, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += f.push(p);
  return out;
}

TEST(StopStringFilter, NoStopsReleasesEverything) {
  StopStringFilter f({}, false);
  EXPECT_EQ(f.push("abc"), "abc");
  EXPECT_EQ(f.flush(), "");
}

TEST(StopStringFilter, HoldsBackAPossibleStart) {
  StopStringFilter f({"END"}, false);
  EXPECT_EQ(f.push("hello E"), "hello ");
  EXPECT_EQ(f.push("N"), "");
  EXPECT_EQ(f.push("x"), "ENx");  // not a stop after all
  EXPECT_FALSE(f.matched());
  EXPECT_EQ(f.push("EN"), "");
  EXPECT_EQ(f.flush(), "EN");
}

TEST(StopStringFilter, MatchSpreadOverPiecesIsTrimmed) {
  StopStringFilter f({"</answer>"}, false);
  EXPECT_EQ(feed(f, {"42 ", "</", "ans", "wer", ">tail"}), "42 ");
  ASSERT_TRUE(f.matched());
  EXPECT_EQ(*f.matched(), "</answer>");
  EXPECT_EQ(f.push("more"), "");
  EXPECT_EQ(f.flush(), "");
}

TEST(StopStringFilter, IncludeStopKeepsTheMatch) {
  StopStringFilter f({"\n\n"}, true);
  EXPECT_EQ(feed(f, {"a\n", "\nb"}), "a\n\n");
}

TEST(StopStringFilter, EarliestMatchWins) {
  StopStringFilter f({"cd", "bcdef"}, false);
  EXPECT_EQ(f.push("abcdefg"), "a");
  EXPECT_EQ(*f.matched(), "bcdef");
  StopStringFilter g({"xyz", "b"}, false);
  EXPECT_EQ(g.push("abxyz"), "a");
  EXPECT_EQ(*g.matched(), "b");
}

TEST(StopStringFilter, OverlappingPrefixes) {
  StopStringFilter f({"aab"}, false);
  EXPECT_EQ(f.push("xa"), "x");
  EXPECT_EQ(f.push("a"), "");
  EXPECT_EQ(f.push("a"), "a");  // "aaa": the last two may still start "aab"
  EXPECT_EQ(f.push("b"), "");
  EXPECT_EQ(*f.matched(), "aab");
}

}  // namespace
}  // namespace tessera::engine
