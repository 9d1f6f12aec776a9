#include "providers/catalog.h"

#include <gtest/gtest.h>

#include <vector>

namespace beacon::providers {
namespace {

config::ModelConfig Model(std::string id, double prompt, double completion,
                          std::optional<double> cached = std::nullopt) {
    config::ModelConfig m;
    m.id = std::move(id);
    m.provider = "p";
    m.prompt_price = prompt;
    m.completion_price = completion;
    m.cached_prompt_price = cached;
    return m;
}

class CatalogTest : public testing::Test {
  protected:
    CatalogTest()
        : catalog_({Model("openai/gpt-4o", 0.0000025, 0.00001, 0.00000125),
                    Model("meta/llama", 0.000001, 0.000002), Model("meta/llama:free", 0, 0)}) {}
    Catalog catalog_;
};

TEST_F(CatalogTest, FindsExactId) {
    // Verifies lookup by exact id and that unknown ids give nullptr.
    const ModelEntry* m = catalog_.Find("openai/gpt-4o");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->id, "openai/gpt-4o");
    EXPECT_DOUBLE_EQ(m->prompt_price, 0.0000025);
    EXPECT_EQ(catalog_.Find("openai/gpt-4"), nullptr);
    EXPECT_EQ(catalog_.Find(""), nullptr);
    EXPECT_EQ(catalog_.Find("OPENAI/GPT-4O"), nullptr);
}

TEST_F(CatalogTest, FindsIdWithVariantSuffix) {
    // Verifies that ":variant" falls back to the base id, and an exact entry wins over it.
    const ModelEntry* nitro = catalog_.Find("openai/gpt-4o:nitro");
    ASSERT_NE(nitro, nullptr);
    EXPECT_EQ(nitro->id, "openai/gpt-4o");
    const ModelEntry* exact = catalog_.Find("meta/llama:free");
    ASSERT_NE(exact, nullptr);
    EXPECT_EQ(exact->id, "meta/llama:free");
    EXPECT_DOUBLE_EQ(exact->prompt_price, 0);
    const ModelEntry* other = catalog_.Find("meta/llama:nitro");
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(other->id, "meta/llama");
    // Only the last suffix is stripped, once.
    EXPECT_EQ(catalog_.Find("openai/gpt-4o:a:b"), nullptr);
    EXPECT_EQ(catalog_.Find("unknown/model:free"), nullptr);
}

TEST_F(CatalogTest, KeepsConfigOrderAndDefaults) {
    // Verifies the entries keep config order and fill upstream_model, name and cached price.
    ASSERT_EQ(catalog_.models().size(), 3u);
    EXPECT_EQ(catalog_.models()[0].id, "openai/gpt-4o");
    EXPECT_EQ(catalog_.models()[2].id, "meta/llama:free");
    const ModelEntry* llama = catalog_.Find("meta/llama");
    ASSERT_NE(llama, nullptr);
    EXPECT_EQ(llama->upstream_model, "meta/llama");
    EXPECT_EQ(llama->name, "meta/llama");
    EXPECT_EQ(llama->provider, "p");
    EXPECT_DOUBLE_EQ(llama->cached_prompt_price, 0.000001);
    EXPECT_GT(llama->created, 0);

    config::ModelConfig named = Model("a/b", 1, 2);
    named.upstream_model = "b-v2";
    named.name = "A: B";
    named.context_length = 8192;
    Catalog c({named});
    ASSERT_NE(c.Find("a/b"), nullptr);
    EXPECT_EQ(c.Find("a/b")->upstream_model, "b-v2");
    EXPECT_EQ(c.Find("a/b")->name, "A: B");
    EXPECT_EQ(c.Find("a/b")->context_length, 8192);
}

TEST(ComputeCostTest, ChargesCachedTokensAtCachedPrice) {
    // Verifies cost: uncached prompt tokens at the prompt price, cached ones at the cached price,
    // completion tokens at the completion price.
    Catalog c({Model("m", 0.0000025, 0.00001, 0.00000125)});
    Usage u;
    u.prompt_tokens = 1000;
    u.cached_tokens = 400;
    u.completion_tokens = 200;
    u.reasoning_tokens = 50;  // part of completion: not charged twice
    Cost cost = ComputeCost(*c.Find("m"), u);
    EXPECT_NEAR(cost.prompt, 600 * 0.0000025 + 400 * 0.00000125, 1e-15);
    EXPECT_NEAR(cost.prompt, 0.002, 1e-15);
    EXPECT_NEAR(cost.completion, 0.002, 1e-15);
    EXPECT_NEAR(cost.total, 0.004, 1e-15);
}

TEST(ComputeCostTest, CachedPriceDefaultsToPromptPrice) {
    // Verifies that without a cached price, cached tokens cost as much as other prompt tokens.
    Catalog c({Model("m", 0.000003, 0.000015)});
    Usage cached;
    cached.prompt_tokens = 1000;
    cached.cached_tokens = 900;
    cached.completion_tokens = 10;
    Usage uncached = cached;
    uncached.cached_tokens = 0;
    const Cost a = ComputeCost(*c.Find("m"), cached);
    const Cost b = ComputeCost(*c.Find("m"), uncached);
    EXPECT_NEAR(a.prompt, 0.003, 1e-15);
    EXPECT_NEAR(a.prompt, b.prompt, 1e-15);
    EXPECT_NEAR(a.total, 0.003 + 0.00015, 1e-15);
}

TEST(ComputeCostTest, CachedTokensAreClampedToPromptTokens) {
    // Verifies that a provider reporting more cached than prompt tokens is not charged negative.
    Catalog c({Model("m", 0.000002, 0.000004, 0.000001)});
    Usage u;
    u.prompt_tokens = 10;
    u.cached_tokens = 50;
    const Cost cost = ComputeCost(*c.Find("m"), u);
    EXPECT_NEAR(cost.prompt, 10 * 0.000001, 1e-15);
    EXPECT_DOUBLE_EQ(cost.completion, 0);
    EXPECT_NEAR(cost.total, 0.00001, 1e-15);
}

TEST(ComputeCostTest, ZeroUsageIsFree) {
    // Verifies that no tokens cost nothing.
    Catalog c({Model("m", 0.000002, 0.000004)});
    const Cost cost = ComputeCost(*c.Find("m"), Usage{});
    EXPECT_EQ(cost.total, 0);
}

TEST(PriceStringTest, DecimalWithoutExponent) {
    // Verifies OpenRouter's price strings: plain decimals, no trailing zeros, no exponent.
    EXPECT_EQ(PriceString(0.0000025), "0.0000025");
    EXPECT_EQ(PriceString(0.00001), "0.00001");
    EXPECT_EQ(PriceString(0), "0");
    EXPECT_EQ(PriceString(1.5), "1.5");
    EXPECT_EQ(PriceString(2), "2");
    EXPECT_EQ(PriceString(0.000000075), "0.000000075");
    EXPECT_EQ(PriceString(0.000001), "0.000001");
    EXPECT_EQ(PriceString(15), "15");
}

}  // namespace
}  // namespace beacon::providers
