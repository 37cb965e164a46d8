build/obj/providers/buf.o: ../../providers/buf.c ../../providers/buf.h

../../providers/buf.h:
