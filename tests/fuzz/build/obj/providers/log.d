build/obj/providers/log.o: ../../providers/log.c ../../providers/log.h

../../providers/log.h:
