// The attendance plugin's factory symbol.
#include "attendance_audit.hpp"

CAMPUS_DEFINE_PLUGIN("attendance", "0.1.0", campus::attendance::AttendanceAudit)
