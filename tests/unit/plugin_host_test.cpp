// Plugin modules: the good one loads; wrong API version, missing symbol, missing file are
// refused with an error naming the file and the fix.
#include <gtest/gtest.h>

#include "core/plugin_host.hpp"

using namespace campus;

TEST(PluginHost, LoadsAModuleAndCreatesItsAudit) {
  auto m = load_plugin_module(CAMPUS_PLUGIN_BUILD_DIR, "testaudit");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(std::string(m->descriptor->name), "test");
  EXPECT_EQ(m->descriptor->api_version, kPluginApiVersion);
  std::unique_ptr<AuditPlugin> p(m->descriptor->create());
  EXPECT_NE(p, nullptr);
}

TEST(PluginHost, RefusesAnotherApiVersion) {
  auto m = load_plugin_module(CAMPUS_PLUGIN_BUILD_DIR, "badversion");
  ASSERT_FALSE(m.ok());
  auto msg = m.error().message();
  EXPECT_NE(msg.find("campus-badversion.so"), std::string::npos) << msg;
  EXPECT_NE(msg.find("plugin API version " + std::to_string(kPluginApiVersion + 98)), std::string::npos) << msg;
  EXPECT_NE(msg.find("rebuild the plugin"), std::string::npos) << msg;
}

TEST(PluginHost, RefusesAModuleWithoutTheFactorySymbol) {
  auto m = load_plugin_module(CAMPUS_PLUGIN_BUILD_DIR, "nosymbol");
  ASSERT_FALSE(m.ok());
  auto msg = m.error().message();
  EXPECT_NE(msg.find("campus_plugin_descriptor is missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CAMPUS_DEFINE_PLUGIN"), std::string::npos) << msg;
}

TEST(PluginHost, MissingModuleNamesThePathAndTheSetting) {
  auto m = load_plugin_module("/nonexistent/plugins", "fiber");
  ASSERT_FALSE(m.ok());
  auto msg = m.error().message();
  EXPECT_NE(msg.find("/nonexistent/plugins/campus-fiber.so"), std::string::npos) << msg;
  EXPECT_NE(msg.find("agent.plugin_dir"), std::string::npos) << msg;
}

TEST(PluginHost, ConfigureReportsEveryBadAuditAndKeepsTheGoodOnes) {
  AgentConfig c;
  c.file = "agent.toml";
  c.plugin_dir = CAMPUS_PLUGIN_BUILD_DIR;
  for (std::string n : {"good", "old", "gone"}) {
    AuditSchedule s;
    s.name = n;
    s.plugin = n == "good" ? "testaudit" : n == "old" ? "badversion" : "doesnotexist";
    c.audits.push_back(s);
    static const toml::table empty;
    c.audit_tables[n] = &empty;
  }
  PluginHost host;
  Errors errors;
  auto audits = host.configure(c, {}, errors);
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0].schedule.name, "good");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].message().find("audits.old"), std::string::npos) << errors[0].message();
  EXPECT_NE(errors[1].message().find("audits.gone"), std::string::npos) << errors[1].message();
}
