"""The pure core: functions of data and an explicit `now`. No I/O, no printing, no broker."""
