// The attendance plugin: AuditPlugin around AttendanceAudit, and its factory symbol.
#include "attendance_audit.hpp"

namespace campus::attendance {

class AttendancePlugin : public AuditPlugin {
 public:
  void configure(TableReader& reader, const PluginEnv& env) override {
    // On any problem the previous settings stay (reload of a bad config).
    if (auto s = read_settings(reader, env))
      if (auto st = audit_.apply(std::move(*s)); !st) reader.error("calendar", st.error().message());
  }
  void audit(AuditContext ctx, std::function<void(AuditReport)> done) override { audit_.audit(std::move(ctx), std::move(done)); }
  void cancel() override { audit_.cancel(); }
  bool reads_records() const override { return audit_.reads_records(); }

 private:
  AttendanceAudit audit_;
};

}  // namespace campus::attendance

CAMPUS_DEFINE_PLUGIN("attendance", "0.1.0", campus::attendance::AttendancePlugin)
