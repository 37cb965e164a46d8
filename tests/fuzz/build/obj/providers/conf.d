build/obj/providers/conf.o: ../../providers/conf.c ../../providers/conf.h

../../providers/conf.h:
